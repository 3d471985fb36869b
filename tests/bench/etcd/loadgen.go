// etcd load generator shaped like `carelogctl bench append`, for tests/bench/cluster_bench.py.
//
// N goroutines share one clientv3 client (as carelogctl bench shares one libcarelog client);
// each does sequential synchronous puts of B-byte values under unique keys until the M puts
// are spread over them. Prints one JSON line with the fields carelogctl bench --json prints:
// {ops_per_s, p50_ms, p99_ms, errors, ops, clients, body_bytes, seconds}.
//
// Built in GOPATH mode against Debian's golang-etcd-server-dev sources (etcd 3.4):
//
//	GO111MODULE=off GOPATH=$TMP:/usr/share/gocode \
//		go build -o $TMP/loadgen tests/bench/etcd/loadgen.go
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.uber.org/zap"
)

// The worker counts are bounded by the flag value; keep it sane so a typo cannot spawn millions.
const clientsMax = 4096

type result struct {
	OpsPerS   float64 `json:"ops_per_s"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	Errors    uint64  `json:"errors"`
	Ops       uint64  `json:"ops"`
	Clients   int     `json:"clients"`
	BodyBytes int     `json:"body_bytes"`
	Seconds   float64 `json:"seconds"`
	FirstErr  string  `json:"first_error,omitempty"`
}

// percentile is nearest-rank over sorted values, the same rule as carelogctl bench.
func percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100.0 * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

func main() {
	endpoints := flag.String("endpoints", "http://127.0.0.1:2379", "comma-separated client URLs")
	clients := flag.Int("clients", 1, "concurrent writers (goroutines sharing one client)")
	count := flag.Int("count", 10000, "total puts")
	bodyBytes := flag.Int("body-bytes", 1024, "value size in bytes")
	prefix := flag.String("prefix", "bench", "key prefix (unique keys: PREFIX/WORKER/SEQ)")
	timeout := flag.Duration("timeout", 10*time.Second, "per-put timeout")
	flag.Parse()
	if *clients < 1 || *clients > clientsMax || *count < 1 || *bodyBytes < 0 {
		fmt.Fprintf(os.Stderr, "loadgen: need 1 <= clients <= %d, count >= 1, body-bytes >= 0\n",
			clientsMax)
		os.Exit(2)
	}
	if *clients > *count {
		*clients = *count
	}

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(*endpoints, ","),
		DialTimeout: 5 * time.Second,
		LogConfig: &zap.Config{ // only errors, on stderr: stdout carries the JSON result
			Level:            zap.NewAtomicLevelAt(zap.ErrorLevel),
			Encoding:         "json",
			EncoderConfig:    zap.NewProductionEncoderConfig(),
			OutputPaths:      []string{"stderr"},
			ErrorOutputPaths: []string{"stderr"},
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: connect: %v\n", err)
		os.Exit(1)
	}
	defer cli.Close()

	filler := "synthetic benchmark text, no patient data. "
	var b strings.Builder
	for b.Len() < *bodyBytes {
		b.WriteString(filler)
	}
	value := b.String()[:*bodyBytes]

	// Warm the connection (and find the leader) outside the measurement, as the carelog
	// client is connected before carelogctl bench starts its clock.
	{
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		_, err := cli.Put(ctx, *prefix+"/warmup", "x")
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: warm-up put: %v\n", err)
			os.Exit(1)
		}
	}

	latencies := make([][]float64, *clients)
	errs := make([]uint64, *clients)
	var firstErr string
	var firstErrOnce sync.Once
	var start sync.WaitGroup
	var done sync.WaitGroup
	gate := make(chan struct{})
	for w := 0; w < *clients; w++ {
		n := *count / *clients
		if w < *count%*clients {
			n++
		}
		latencies[w] = make([]float64, 0, n)
		start.Add(1)
		done.Add(1)
		go func(w, n int) {
			defer done.Done()
			start.Done()
			<-gate
			for i := 0; i < n; i++ {
				key := fmt.Sprintf("%s/%04d/%08d", *prefix, w, i)
				ctx, cancel := context.WithTimeout(context.Background(), *timeout)
				t0 := time.Now()
				_, err := cli.Put(ctx, key, value)
				d := time.Since(t0)
				cancel()
				if err != nil {
					errs[w]++
					firstErrOnce.Do(func() { firstErr = err.Error() })
					continue
				}
				latencies[w] = append(latencies[w], float64(d.Nanoseconds())/1e6)
			}
		}(w, n)
	}
	start.Wait()
	t0 := time.Now()
	close(gate)
	done.Wait()
	seconds := time.Since(t0).Seconds()

	all := make([]float64, 0, *count)
	var errors uint64
	for w := 0; w < *clients; w++ {
		all = append(all, latencies[w]...)
		errors += errs[w]
	}
	sort.Float64s(all)
	r := result{
		P50Ms:     percentile(all, 50),
		P99Ms:     percentile(all, 99),
		Errors:    errors,
		Ops:       uint64(len(all)),
		Clients:   *clients,
		BodyBytes: *bodyBytes,
		Seconds:   seconds,
		FirstErr:  firstErr,
	}
	if seconds > 0 {
		r.OpsPerS = float64(len(all)) / seconds
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if errors > 0 {
		os.Exit(1)
	}
}

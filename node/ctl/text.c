/* carelogctl's output helpers: a small escaping JSON writer, UTF-8 checks, base64, times. */
#include "node/ctl/ctl.h"

#include "carelog/errors.h"
#include "common/assert.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the valid UTF-8 sequence at s[0..len), or 0 if it is not one (RFC 3629). */
static size_t ctl_utf8_seq(const uint8_t *s, size_t len)
{
	uint8_t c = s[0];
	if (c < 0x80) {
		return 1;
	}
	size_t n;
	uint32_t cp;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1fu;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0fu;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07u;
	} else {
		return 0;
	}
	if (len < n) {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0u) != 0x80u) {
			return 0;
		}
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff)) {
		return 0;
	}
	return n;
}

bool ctl_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t n = ctl_utf8_seq(s + i, len - i);
		if (n == 0) {
			return false;
		}
		i += n;
	}
	return true;
}

bool ctl_text_printable(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t c = s[i];
		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
			return false;
		}
	}
	return ctl_utf8_valid(s, len);
}

/* ------------------------------------------------------------------ base64 */

const char *ctl_progress_line(char *out, size_t out_len, uint64_t id, bool has_match,
			      uint64_t match, uint64_t lag, bool rate_known,
			      uint64_t entries_per_s)
{
	CL_ASSERT(out != NULL && out_len > 0);
	if (!has_match) {
		snprintf(out, out_len, "learner %" PRIu64 ": no progress reported yet", id);
		return out;
	}
	/* match + lag can only overflow with a corrupt reply: saturate rather than wrap */
	uint64_t total = lag > UINT64_MAX - match ? UINT64_MAX : match + lag;
	unsigned percent = 100;
	if (lag > 0) {
		double p = 100.0 * (double)match / (double)total;
		percent = p >= 99.0 ? 99u : (unsigned)p; /* 100% means caught up, nothing less */
	}
	int n = snprintf(out, out_len, "learner %" PRIu64 ": match %" PRIu64 "/%" PRIu64 " (%u%%)",
			 id, match, total, percent);
	if (rate_known && n > 0 && (size_t)n < out_len) {
		snprintf(out + n, out_len - (size_t)n, ", %" PRIu64 " entries/s", entries_per_s);
	}
	return out;
}

size_t ctl_base64_size(size_t len)
{
	return (len + 2) / 3 * 4 + 1;
}

void ctl_base64_encode(char *out, const uint8_t *in, size_t len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
		out[o++] = alphabet[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len) {
			v |= (uint32_t)in[i + 1] << 8;
		}
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	CL_ASSERT(o + 1 == ctl_base64_size(len));
}

/* ------------------------------------------------------------------ times */

void ctl_time_format(char out[CTL_TIME_TEXT_BYTES], uint64_t ms)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	if (ms / 1000 > (uint64_t)253402300799 || gmtime_r(&secs, &tm) == NULL) {
		/* beyond year 9999: say so rather than print a wrong date */
		snprintf(out, CTL_TIME_TEXT_BYTES, "@%" PRIu64 "ms", ms);
		return;
	}
	size_t n = strftime(out, CTL_TIME_TEXT_BYTES, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, CTL_TIME_TEXT_BYTES - n, ".%03uZ", (unsigned)(ms % 1000));
}

static bool ctl_digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i])) {
			return false;
		}
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

int ctl_time_parse(const char *text, uint64_t *out_ms)
{
	size_t len = strlen(text);
	if (len == 0) {
		return CARELOG_EINVAL;
	}
	if (strspn(text, "0123456789") == len) {
		if (len > 15) { /* beyond year 33658: a typo, not a time */
			return CARELOG_EINVAL;
		}
		*out_ms = strtoull(text, NULL, 10);
		return CARELOG_OK;
	}
	/* YYYY-MM-DD[THH:MM:SS[.fff]Z] */
	unsigned y, mo, d, h = 0, mi = 0, s = 0, frac = 0;
	if (len < 10 || text[4] != '-' || text[7] != '-' || !ctl_digits(text, 4, &y) ||
	    !ctl_digits(text + 5, 2, &mo) || !ctl_digits(text + 8, 2, &d)) {
		return CARELOG_EINVAL;
	}
	const char *p = text + 10;
	if (*p != '\0') {
		if ((*p != 'T' && *p != ' ') || strlen(p) < 10 || p[3] != ':' || p[6] != ':' ||
		    !ctl_digits(p + 1, 2, &h) || !ctl_digits(p + 4, 2, &mi) ||
		    !ctl_digits(p + 7, 2, &s)) {
			return CARELOG_EINVAL;
		}
		p += 9;
		if (*p == '.') {
			size_t fn = strspn(p + 1, "0123456789");
			if (fn == 0 || fn > 3 || !ctl_digits(p + 1, fn, &frac)) {
				return CARELOG_EINVAL;
			}
			for (size_t i = fn; i < 3; i++) {
				frac *= 10;
			}
			p += 1 + fn;
		}
		if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0) {
			return CARELOG_EINVAL; /* only UTC: a journal never guesses a time zone */
		}
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
		return CARELOG_EINVAL;
	}
	struct tm tm = {.tm_year = (int)y - 1900, .tm_mon = (int)mo - 1, .tm_mday = (int)d,
			.tm_hour = (int)h, .tm_min = (int)mi, .tm_sec = (int)s};
	time_t t = timegm(&tm);
	if (t < 0 || tm.tm_mday != (int)d) { /* timegm normalises 31 February: refuse it */
		return CARELOG_EINVAL;
	}
	*out_ms = (uint64_t)t * 1000u + frac;
	return CARELOG_OK;
}

/* ------------------------------------------------------------------ JSON */

void ctl_json_init(struct ctl_json *j, FILE *out)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
}

/* Separator before a value or a key, and the check that one is due here. */
static void ctl_json_before_value(struct ctl_json *j)
{
	if (j->in_object[j->depth]) {
		CL_ASSERT(j->key_written); /* a value inside an object needs its key first */
		j->key_written = false;
		return;
	}
	if (j->need_comma[j->depth]) {
		fputc(',', j->out);
	}
	j->need_comma[j->depth] = true;
}

static void ctl_json_open(struct ctl_json *j, char c, bool object)
{
	ctl_json_before_value(j);
	CL_ASSERT(j->depth < CTL_JSON_DEPTH_MAX);
	fputc(c, j->out);
	j->depth++;
	j->need_comma[j->depth] = false;
	j->in_object[j->depth] = object;
}

static void ctl_json_close(struct ctl_json *j, char c, bool object)
{
	CL_ASSERT(j->depth > 0 && j->in_object[j->depth] == object && !j->key_written);
	j->depth--;
	fputc(c, j->out);
}

void ctl_json_object_begin(struct ctl_json *j)
{
	ctl_json_open(j, '{', true);
}

void ctl_json_object_end(struct ctl_json *j)
{
	ctl_json_close(j, '}', true);
}

void ctl_json_array_begin(struct ctl_json *j)
{
	ctl_json_open(j, '[', false);
}

void ctl_json_array_end(struct ctl_json *j)
{
	ctl_json_close(j, ']', false);
}

static void ctl_json_quoted(FILE *out, const uint8_t *s, size_t len)
{
	fputc('"', out);
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		if (c == '"' || c == '\\') {
			fputc('\\', out);
			fputc(c, out);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			switch (c) {
			case '\n':
				fputs("\\n", out);
				break;
			case '\t':
				fputs("\\t", out);
				break;
			case '\r':
				fputs("\\r", out);
				break;
			case '\b':
				fputs("\\b", out);
				break;
			case '\f':
				fputs("\\f", out);
				break;
			default:
				fprintf(out, "\\u%04x", c);
				break;
			}
			i++;
		} else if (c < 0x80) {
			fputc(c, out);
			i++;
		} else {
			size_t n = ctl_utf8_seq(s + i, len - i);
			if (n == 0) {
				fputs("\\ufffd", out); /* one replacement per invalid byte */
				i++;
			} else {
				fwrite(s + i, 1, n, out);
				i += n;
			}
		}
	}
	fputc('"', out);
}

void ctl_json_key(struct ctl_json *j, const char *key)
{
	CL_ASSERT(j->in_object[j->depth] && !j->key_written);
	if (j->need_comma[j->depth]) {
		fputc(',', j->out);
	}
	j->need_comma[j->depth] = true;
	ctl_json_quoted(j->out, (const uint8_t *)key, strlen(key));
	fputc(':', j->out);
	j->key_written = true;
}

void ctl_json_string_n(struct ctl_json *j, const uint8_t *s, size_t len)
{
	ctl_json_before_value(j);
	ctl_json_quoted(j->out, s, len);
}

void ctl_json_string(struct ctl_json *j, const char *s)
{
	ctl_json_string_n(j, (const uint8_t *)s, strlen(s));
}

void ctl_json_u64(struct ctl_json *j, uint64_t v)
{
	ctl_json_before_value(j);
	fprintf(j->out, "%" PRIu64, v);
}

void ctl_json_double(struct ctl_json *j, double v)
{
	ctl_json_before_value(j);
	if (v != v || v > 1e300 || v < -1e300) {
		fputs("null", j->out); /* JSON has no NaN or infinity */
		return;
	}
	fprintf(j->out, "%.3f", v);
}

void ctl_json_bool(struct ctl_json *j, bool v)
{
	ctl_json_before_value(j);
	fputs(v ? "true" : "false", j->out);
}

void ctl_json_null(struct ctl_json *j)
{
	ctl_json_before_value(j);
	fputs("null", j->out);
}

void ctl_json_hex(struct ctl_json *j, const uint8_t *bytes, size_t len)
{
	ctl_json_before_value(j);
	fputc('"', j->out);
	for (size_t i = 0; i < len; i++) {
		fprintf(j->out, "%02x", bytes[i]);
	}
	fputc('"', j->out);
}

void ctl_json_finish(struct ctl_json *j)
{
	CL_ASSERT(j->depth == 0 && !j->key_written);
	fputc('\n', j->out);
}

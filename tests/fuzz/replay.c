/* Runs a libFuzzer target over files without libFuzzer (any compiler): keeps the targets and
 * their seed corpora working in ordinary builds. Usage: replay FILE_OR_DIR... */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { REPLAY_FILE_BYTES_MAX = 16 * 1024 * 1024, REPLAY_PATH_BYTES = 4096 };

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "replay: cannot open %s\n", path);
		return 1;
	}
	uint8_t *buf = malloc(REPLAY_FILE_BYTES_MAX);
	if (buf == NULL) {
		fclose(f);
		return 1;
	}
	size_t n = fread(buf, 1, REPLAY_FILE_BYTES_MAX, f);
	int bad = ferror(f) || !feof(f);
	fclose(f);
	if (bad) {
		fprintf(stderr, "replay: cannot read %s (or larger than %d bytes)\n", path,
		        REPLAY_FILE_BYTES_MAX);
		free(buf);
		return 1;
	}
	/* An exactly sized copy, so a sanitizer sees any read past the end. */
	uint8_t *exact = malloc(n > 0 ? n : 1);
	if (exact == NULL) {
		free(buf);
		return 1;
	}
	if (n > 0) {
		memcpy(exact, buf, n);
	}
	free(buf);
	LLVMFuzzerTestOneInput(exact, n);
	free(exact);
	printf("replay: %s (%zu bytes) ok\n", path, n);
	return 0;
}

static int replay_path(const char *path, size_t *files)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		fprintf(stderr, "replay: no such file or directory: %s\n", path);
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*files)++;
		return replay_file(path);
	}
	DIR *d = opendir(path);
	if (d == NULL) {
		return 1;
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.') {
			continue;
		}
		char child[REPLAY_PATH_BYTES];
		snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
		(*files)++;
		rc = replay_file(child);
	}
	closedir(d);
	return rc;
}

int main(int argc, char **argv)
{
	size_t files = 0;
	for (int i = 1; i < argc; i++) {
		if (replay_path(argv[i], &files) != 0) {
			return 1;
		}
	}
	if (files == 0) {
		fprintf(stderr, "replay: no inputs\n");
		return 1;
	}
	return 0;
}

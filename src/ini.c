/*
 * INI reader for pgbouncer.ini (see ini.h for the dialect).
 *
 * A file is read whole into memory (it is bounded), then split into lines;
 * each line is copied into one scratch buffer of INI_MAX_LINE bytes and cut
 * in place into key and value. The scratch buffer is shared by nested
 * %include levels: a line is finished with before the next one is copied,
 * and the include path is copied out before the nested file is read.
 *
 * Loops are caught by device and inode rather than by name, so two
 * spellings of one file ("a.ini", "./a.ini", a symlink) are the same file.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "ini.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

struct ini_file_id {
	bool known; /* false for a buffer that is not backed by a file */
	dev_t dev;
	ino_t ino;
};

struct ini_ctx {
	ini_callback cb;
	void *arg;
	char **err;
	int depth; /* 0 while reading the top file */
	struct ini_file_id open[INI_MAX_DEPTH + 1];
	size_t total; /* bytes read over all files */
	bool have_section;
	char section[INI_MAX_SECTION + 1];
	char *line; /* INI_MAX_LINE + 1 bytes of scratch */
};

static bool parse_file(struct ini_ctx *ctx, const char *path, const char *from, int from_line);

/* Records an error at file:line (line 0: no line applies). Always returns false. */
PRINTF_LIKE(4, 5)
static bool ini_fail(struct ini_ctx *ctx, const char *file, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		*ctx->err = xasprintf("%s:%d: %s", file, line, msg);
	else
		*ctx->err = xasprintf("%s: %s", file, msg);
	return false;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static char *skip_blanks(char *p)
{
	while (is_blank(*p))
		p++;
	return p;
}

/* Cuts trailing blanks off the string starting at s and ending before end. */
static void trim_end(char *s, char *end)
{
	while (end > s && is_blank(end[-1]))
		end--;
	*end = '\0';
}

static bool call_back(struct ini_ctx *ctx, const char *file, int line, const char *key,
                      const char *value)
{
	char *msg = NULL;
	const char *section = ctx->have_section ? ctx->section : NULL;
	if (ctx->cb(ctx->arg, file, line, section, key, value, &msg)) {
		/* A callback that sets a message and still accepts has leaked it to us. */
		free(msg);
		return true;
	}
	*ctx->err = xasprintf("%s:%d: %s", file, line, msg ? msg : "rejected");
	free(msg);
	return false;
}

static bool parse_section(struct ini_ctx *ctx, const char *file, int line, char *p)
{
	char *close = strchr(p, ']');
	if (!close)
		return ini_fail(ctx, file, line, "section header without closing \"]\"");
	if (*skip_blanks(close + 1) != '\0')
		return ini_fail(ctx, file, line, "unexpected text after section header");
	char *name = skip_blanks(p + 1);
	trim_end(name, close);
	size_t len = strlen(name);
	if (len == 0)
		return ini_fail(ctx, file, line, "empty section name");
	if (len > INI_MAX_SECTION)
		return ini_fail(ctx, file, line, "section name longer than %d bytes",
		                INI_MAX_SECTION);
	memcpy(ctx->section, name, len + 1);
	ctx->have_section = true;
	return call_back(ctx, file, line, NULL, NULL);
}

static bool parse_include(struct ini_ctx *ctx, const char *file, int line, char *arg)
{
	char *target = skip_blanks(arg);
	if (*target == '\0')
		return ini_fail(ctx, file, line, "%%include needs a file name");
	if (ctx->depth >= INI_MAX_DEPTH)
		return ini_fail(ctx, file, line, "%%include nested deeper than %d levels",
		                INI_MAX_DEPTH);

	/* Relative to the including file, so a config tree can be moved as a whole. */
	char path[PATH_MAX];
	int n;
	const char *slash = strrchr(file, '/');
	if (target[0] == '/' || !slash)
		n = snprintf(path, sizeof(path), "%s", target);
	else
		n = snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - file), file, target);
	if (n < 0 || (size_t)n >= sizeof(path))
		return ini_fail(ctx, file, line, "%%include path too long");
	return parse_file(ctx, path, file, line);
}

/* Reads a double-quoted key in place ("" is one quote); returns the byte after it. */
static char *parse_quoted_key(struct ini_ctx *ctx, const char *file, int line, char *p, char **key)
{
	char *r = p + 1, *w = p + 1;
	*key = w;
	for (;;) {
		if (*r == '\0') {
			ini_fail(ctx, file, line, "unterminated quoted key");
			return NULL;
		}
		if (*r == '"') {
			if (r[1] != '"')
				break;
			r++;
		}
		*w++ = *r++;
	}
	*w = '\0';
	if (w == *key) {
		ini_fail(ctx, file, line, "empty key");
		return NULL;
	}
	return r + 1;
}

static bool parse_line(struct ini_ctx *ctx, const char *file, int line, char *text, size_t len)
{
	trim_end(text, text + len);
	char *p = skip_blanks(text);

	if (*p == '\0' || *p == ';' || *p == '#')
		return true;
	if (*p == '[')
		return parse_section(ctx, file, line, p);
	if (*p == '%') {
		if (strncmp(p, "%include", 8) == 0 && (p[8] == ' ' || p[8] == '\t'))
			return parse_include(ctx, file, line, p + 8);
		if (strcmp(p, "%include") == 0)
			return ini_fail(ctx, file, line, "%%include needs a file name");
		return ini_fail(ctx, file, line, "unknown directive");
	}

	char *key, *after;
	if (*p == '"') {
		after = parse_quoted_key(ctx, file, line, p, &key);
		if (!after)
			return false;
	} else {
		key = p;
		while (*p && !is_blank(*p) && *p != '=' && *p != '"')
			p++;
		if (p == key)
			return ini_fail(ctx, file, line, "expected \"key = value\"");
		after = p;
	}
	/* Terminate the key only after looking at what follows it. */
	char *eq = skip_blanks(after);
	if (*eq != '=')
		return ini_fail(ctx, file, line, "expected \"=\" after key");
	*after = '\0';
	char *value = skip_blanks(eq + 1);
	return call_back(ctx, file, line, key, value);
}

static bool parse_buffer(struct ini_ctx *ctx, const char *name, const char *buf, size_t len)
{
	size_t pos = 0;
	int line = 0;

	/* Editors on some systems start UTF-8 files with a byte order mark. */
	if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *start = buf + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;
		pos += n + (nl ? 1 : 0);
		line++;
		if (n > INI_MAX_LINE)
			return ini_fail(ctx, name, line, "line longer than %d bytes", INI_MAX_LINE);
		if (memchr(start, '\0', n))
			return ini_fail(ctx, name, line, "NUL byte in line");
		memcpy(ctx->line, start, n);
		ctx->line[n] = '\0';
		if (!parse_line(ctx, name, line, ctx->line, n))
			return false;
	}
	return true;
}

/*
 * Reads a regular file of bounded size. Errors are reported at the
 * including line when there is one, else against the file itself.
 */
static bool read_whole(struct ini_ctx *ctx, int fd, const char *path, const char *at, int at_line,
                       char **out, size_t *out_len)
{
	/* One byte past the limit is enough to tell that a file is too large. */
	const size_t limit = (size_t)INI_MAX_FILE + 1;
	size_t cap = 8192, len = 0;
	char *buf = xmalloc(cap);
	while (len < limit) {
		if (len == cap) {
			cap = cap * 2 < limit ? cap * 2 : limit;
			buf = xrealloc(buf, cap);
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(buf);
			return ini_fail(ctx, at, at_line, "cannot read \"%s\": %s", path,
			                strerror(e));
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > INI_MAX_FILE) {
		free(buf);
		return ini_fail(ctx, at, at_line, "\"%s\" is larger than %d bytes", path,
		                INI_MAX_FILE);
	}
	*out = buf;
	*out_len = len;
	return true;
}

static bool parse_file(struct ini_ctx *ctx, const char *path, const char *from, int from_line)
{
	const char *at = from ? from : path;
	int at_line = from ? from_line : 0;

	/* O_NONBLOCK: opening a FIFO must not hang the loader; it is refused below. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return ini_fail(ctx, at, at_line, "cannot open \"%s\": %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return ini_fail(ctx, at, at_line, "cannot stat \"%s\": %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return ini_fail(ctx, at, at_line, "\"%s\" is not a regular file", path);
	}
	for (int i = 0; from && i <= ctx->depth; i++) {
		if (ctx->open[i].known && ctx->open[i].dev == st.st_dev &&
		    ctx->open[i].ino == st.st_ino) {
			close(fd);
			return ini_fail(ctx, at, at_line,
			                "%%include loop: \"%s\" is already being read", path);
		}
	}
	if (st.st_size > INI_MAX_FILE) {
		close(fd);
		return ini_fail(ctx, at, at_line, "\"%s\" is larger than %d bytes", path,
		                INI_MAX_FILE);
	}

	char *buf = NULL;
	size_t len = 0;
	bool ok = read_whole(ctx, fd, path, at, at_line, &buf, &len);
	close(fd);
	if (!ok)
		return false;
	if (len > INI_MAX_TOTAL - ctx->total) {
		free(buf);
		return ini_fail(ctx, at, at_line, "configuration files exceed %d bytes in total",
		                INI_MAX_TOTAL);
	}
	ctx->total += len;

	int level = from ? ctx->depth + 1 : 0;
	ctx->open[level] = (struct ini_file_id){.known = true, .dev = st.st_dev, .ino = st.st_ino};
	int saved = ctx->depth;
	ctx->depth = level;
	ok = parse_buffer(ctx, path, buf, len);
	ctx->depth = saved;
	free(buf);
	return ok;
}

static void ctx_init(struct ini_ctx *ctx, ini_callback cb, void *arg, char **err)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->cb = cb;
	ctx->arg = arg;
	ctx->err = err;
	ctx->line = xmalloc(INI_MAX_LINE + 1);
}

bool ini_parse(const char *path, ini_callback cb, void *arg, char **err)
{
	struct ini_ctx ctx;
	ctx_init(&ctx, cb, arg, err);
	bool ok = parse_file(&ctx, path, NULL, 0);
	free(ctx.line);
	return ok;
}

bool ini_parse_buffer(const char *name, const char *buf, size_t len, ini_callback cb, void *arg,
                      char **err)
{
	struct ini_ctx ctx;
	ctx_init(&ctx, cb, arg, err);
	if (len > INI_MAX_FILE) {
		ini_fail(&ctx, name, 0, "larger than %d bytes", INI_MAX_FILE);
		free(ctx.line);
		return false;
	}
	/* If the name is a real file, an include of it is a loop like any other. */
	struct stat st;
	if (stat(name, &st) == 0)
		ctx.open[0] =
		    (struct ini_file_id){.known = true, .dev = st.st_dev, .ino = st.st_ino};
	ctx.total = len;
	bool ok = parse_buffer(&ctx, name, buf, len);
	free(ctx.line);
	return ok;
}

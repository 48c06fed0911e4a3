/*
 * libFuzzer target for the INI reader (ini.c) and, through a temporary
 * file, the pgbouncer.ini loader (config.c) on top of it.
 *
 * ini_parse_buffer() gets a name in a directory that does not exist, so a
 * relative %include finds nothing; an absolute one may open a regular file
 * of the machine, which ini.c bounds in size and only reads. The callback
 * checks what the reader promises (a section before its first key event,
 * keys never empty) and refuses one key, so the refusal path is covered.
 */
#include "config.h"
#include "ini.h"
#include "log.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

struct seen {
	int events;
};

static bool cb(void *arg, const char *file, int line, const char *section, const char *key,
               const char *value, char **err)
{
	struct seen *s = arg;
	REQUIRE(file != NULL && line >= 1);
	REQUIRE((key == NULL) == (value == NULL));
	if (!key)
		REQUIRE(section != NULL && section[0] != '\0' &&
		        strlen(section) <= INI_MAX_SECTION);
	else
		REQUIRE(key[0] != '\0');
	s->events++;
	if (key && strcmp(key, "refuse") == 0) {
		if (value[0] != '\0')
			*err = xasprintf("refused \"%s\"", value);
		return false;
	}
	return true;
}

static char *tmpdir;
static char *cfg_path;

static void cleanup(void)
{
	unlink(cfg_path);
	rmdir(tmpdir);
}

static void setup(void)
{
	log_quiet = true; /* the loader warns about unimplemented settings */
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	tmpdir = xasprintf("%s/fuzz_ini.XXXXXX", base);
	if (!mkdtemp(tmpdir))
		abort();
	cfg_path = xasprintf("%s/pgbouncer.ini", tmpdir);
	atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!tmpdir)
		setup();

	struct seen s = {0};
	char *err = NULL;
	bool ok = ini_parse_buffer("/nonexistent-fuzz-dir/pgbouncer.ini", (const char *)data, size,
	                           cb, &s, &err);
	REQUIRE(ok ? err == NULL : err != NULL);
	free(err);
	err = NULL;

	/* The whole loader, from a real file as it is used. */
	FILE *f = fopen(cfg_path, "wb");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	struct config *c = config_load(cfg_path, &err);
	REQUIRE(c ? err == NULL : err != NULL);
	if (c) {
		/* Read back every setting, as SHOW CONFIG would. */
		struct config_setting_info info;
		char buf[256];
		for (size_t i = 0; config_setting_at(i, &info); i++)
			(void)config_show_value(c, info.name, buf, sizeof(buf));
		for (const struct db_config *db = c->databases; db; db = db->next) {
			REQUIRE(config_find_db(c, db->name) != NULL);
			(void)config_pool_size(c, db);
			(void)config_pool_mode(c, db, NULL);
		}
	}
	config_free(c);
	free(err);
	return 0;
}

/*
 * Message building. Integers are written in network order; the length
 * field is reserved on begin and patched on end, so callers never count.
 */
#include "pktbuf.h"
#include "util.h"

#include <string.h>

void pktbuf_init(struct pktbuf *pb)
{
	memset(pb, 0, sizeof(*pb));
}

void pktbuf_free(struct pktbuf *pb)
{
	FREE_AND_NULL(pb->data);
	pb->len = pb->cap = pb->msg_start = 0;
}

void pktbuf_reset(struct pktbuf *pb)
{
	pb->len = pb->msg_start = 0;
}

static void reserve(struct pktbuf *pb, size_t n)
{
	if (pb->len + n <= pb->cap)
		return;
	size_t cap = pb->cap ? pb->cap : 256;
	while (cap < pb->len + n)
		cap *= 2;
	pb->data = xrealloc(pb->data, cap);
	pb->cap = cap;
}

void pktbuf_put_bytes(struct pktbuf *pb, const void *p, size_t n)
{
	reserve(pb, n);
	if (n)
		memcpy(pb->data + pb->len, p, n);
	pb->len += n;
}

void pktbuf_put_byte(struct pktbuf *pb, uint8_t v)
{
	pktbuf_put_bytes(pb, &v, 1);
}

void pktbuf_put_uint16(struct pktbuf *pb, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	pktbuf_put_bytes(pb, b, 2);
}

void pktbuf_put_uint32(struct pktbuf *pb, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	pktbuf_put_bytes(pb, b, 4);
}

void pktbuf_put_string(struct pktbuf *pb, const char *s)
{
	pktbuf_put_bytes(pb, s, strlen(s) + 1);
}

void pktbuf_begin(struct pktbuf *pb, uint8_t type)
{
	pb->msg_start = pb->len;
	pb->msg_typed = type != 0;
	if (type)
		pktbuf_put_byte(pb, type);
	pktbuf_put_uint32(pb, 0);
}

void pktbuf_end(struct pktbuf *pb)
{
	size_t at = pb->msg_start + (pb->msg_typed ? 1 : 0);
	uint32_t n = (uint32_t)(pb->len - at);
	uint8_t *p = pb->data + at;
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
}

void pktbuf_put_hex(struct pktbuf *pb, const void *p, size_t n)
{
	char *hex = hex_encode(p, n);
	pktbuf_put_bytes(pb, hex, n * 2);
	free(hex);
}

char *pktbuf_take_string(struct pktbuf *pb)
{
	pktbuf_put_byte(pb, '\0');
	char *s = xstrdup((const char *)pb->data);
	pktbuf_free(pb);
	return s;
}

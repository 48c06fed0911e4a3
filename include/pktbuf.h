/*
 * Building protocol messages. A pktbuf is a growable byte buffer; a
 * message is opened with its type byte, filled with the typed put
 * functions and closed, which writes its length. Several messages may be
 * built back to back and sent with one write.
 */
#ifndef PGSIEVE_PKTBUF_H
#define PGSIEVE_PKTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pktbuf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t msg_start; /* offset of the open message's first byte */
	bool msg_typed;   /* it starts with a type byte */
};

void pktbuf_init(struct pktbuf *pb);
void pktbuf_free(struct pktbuf *pb);
void pktbuf_reset(struct pktbuf *pb);

/* type 0 opens an untyped message (startup packet, cancel request). */
void pktbuf_begin(struct pktbuf *pb, uint8_t type);
void pktbuf_end(struct pktbuf *pb);

void pktbuf_put_byte(struct pktbuf *pb, uint8_t v);
void pktbuf_put_uint16(struct pktbuf *pb, uint16_t v);
void pktbuf_put_uint32(struct pktbuf *pb, uint32_t v);
void pktbuf_put_bytes(struct pktbuf *pb, const void *p, size_t n);
/* Writes the string and its terminating NUL. */
void pktbuf_put_string(struct pktbuf *pb, const char *s);
/* Writes n bytes as lower-case hex digits. */
void pktbuf_put_hex(struct pktbuf *pb, const void *p, size_t n);

/* The bytes written as a malloc'd C string; pb is freed. */
char *pktbuf_take_string(struct pktbuf *pb);

#endif

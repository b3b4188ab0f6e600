#ifndef MINIK_SPDY_ZLIB_H
#define MINIK_SPDY_ZLIB_H
#include <stddef.h>

typedef struct minik_spdy_zlib minik_spdy_zlib;

/* A compressing (deflating != 0) or decompressing stream with the SPDY/3 dictionary. */
minik_spdy_zlib *minik_spdy_zlib_new(int deflating);
void minik_spdy_zlib_free(minik_spdy_zlib *s);
long minik_spdy_zlib_run(minik_spdy_zlib *s, const unsigned char *in, size_t len, unsigned char **out, size_t max);

#endif

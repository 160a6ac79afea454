// expect: field@16 field@17 field@18 field@20 field@23
// args: --enable=field
// says: struct conn keeps a context in the field workers
// says: struct conn::(unnamed at bad_field_variants.c:22:5) keeps a context in the field inner
// says: union conn::(unnamed at bad_field_variants.c:20:5) keeps a context in the field u
/* A context field, an array of them, or one in an anonymous struct or
 * union within the struct: each is a context kept beyond its call. An
 * anonymous struct is named by its place, with its file's base name (not the
 * whole path: the message does not depend on where the build is). A pointer
 * to a context (a slot the caller owns) is no context. */
#include <cctx.h>

typedef cctx_t *ctx_pair[2];

struct conn {
    cctx_t *ctx;
    cctx_t *workers[4];
    ctx_pair grid[3];
    cctx_t **slot;
    union { cctx_t *u; int i; } un;
    int fd;
    struct {
        cctx_t *inner;
    } anon;
};

// expect: field@8
// args: --enable=field
/* Opt-in: a context kept in a struct outlives the call it belongs to. */
#include <cctx.h>

struct client {
    int fd;
    cctx_t *ctx;
};

int client_send(struct client *c, const char *msg);

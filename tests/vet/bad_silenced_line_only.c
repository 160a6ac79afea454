// expect: blocking@10 blocking@12 blocking@15
/* A comment after code silences its own line only, not the next one; a
 * comment silences the line below only when nothing but blanks separates. */
#include <cctx.h>
#include <unistd.h>

void tick(cctx_t *ctx)
{
    usleep(1000); // cctx-vet:ignore=blocking (a 1 ms tick, checked below)
    sleep(30);
    usleep(1000); /* cctx-vet:ignore=blocking */
    sleep(30);
    // cctx-vet:ignore=blocking

    sleep(30);
    (void)ctx;
}

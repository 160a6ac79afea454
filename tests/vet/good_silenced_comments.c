// expect: none
/* Suppression comments as people write them: a block comment over several
 * lines with the directive on its first, a run of `//` lines, and a list of
 * rules with blanks after its commas. */
#include <cctx.h>
#include <unistd.h>

void block_comment_above(cctx_t *ctx)
{
    /* cctx-vet:ignore=blocking: a 1 ms tick,
       and the loop checks ctx */
    usleep(1000);
    (void)ctx;
}

void line_comments_above(cctx_t *ctx)
{
    // cctx-vet:ignore=blocking: a 1 ms tick,
    // and the loop checks ctx
    usleep(1000);
    (void)ctx;
}

void blanks_after_commas(cctx_t *ctx)
{
    usleep(1000); // cctx-vet:ignore=background, blocking (two rules)
    usleep(1000); // cctx-vet:ignore=background,	blocking (a tab)
    (void)ctx;
}

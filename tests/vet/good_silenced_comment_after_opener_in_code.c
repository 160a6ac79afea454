// expect: none
// A block comment alone above a finding opens where it starts, even when the
// lines between it and the comment before it hold the two characters that
// open a comment in a line comment (a glob, config/*.conf) or in a string:
// those are no opener of a block comment.
#include <cctx.h>
#include <glob.h>

static const char pattern[] = "/etc/app/*.conf";

// Reads every config/*.conf file.
int read_configs(cctx_t *p)
{
    /* cctx-vet:ignore=lostrelease: the worker releases it
       when it ends */
    cctx_t *c = cctx_with_cancel(p, NULL);
    glob_t g;
    return glob(pattern, 0, NULL, &g) + cctx_err(c);
}

int read_more(cctx_t *p)
{
    const char *where = "/var/lib/app/*.d"; // a string, then a comment
    /* cctx-vet:ignore=lostrelease: the same */
    cctx_t *c = cctx_with_cancel(p, NULL);
    return where[0] + cctx_err(c);
}

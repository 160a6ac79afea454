// expect: none
// A block comment alone above a finding opens where it starts, even when a
// line above holds the two characters that end a comment, and then those that
// open one, in a string, in a line comment or in a string continued on the
// next line: none of those ends or opens a comment.
#include <cctx.h>
#include <string.h>

static int is_mark(const char *s) { return !strncmp(s, "*/", 2) || !strncmp(s, "/*", 2); }

int lexed(cctx_t *p)
{
    /* cctx-vet:ignore=lostrelease: the worker releases it */
    cctx_t *c = cctx_with_cancel(p, NULL);
    return cctx_err(c) + is_mark("");
}

// A comment ends at */, and the next one opens at /*.
int commented(cctx_t *p)
{
    /* cctx-vet:ignore=lostrelease: the same */
    cctx_t *c = cctx_with_cancel(p, NULL);
    return cctx_err(c);
}

static const char spliced[] = "a string on two lines \
that holds /* as text";

int continued(cctx_t *p)
{
    /* cctx-vet:ignore=lostrelease: the same */
    cctx_t *c = cctx_with_cancel(p, NULL);
    return cctx_err(c) + spliced[0];
}

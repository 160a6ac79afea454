// expect: lostrelease@11 lostrelease@12
// says: the context context_of_a_request_whose_name_is_longer_than_the_checker_k… from cctx_with_cancel
/* A name too long for the checker's messages is cut, and ends in an
 * ellipsis so that the cut shows. */
#include <cctx.h>

int work(cctx_t *ctx);

int f(cctx_t *parent)
{
    cctx_t *context_of_a_request_whose_name_is_longer_than_the_checker_keeps_whole_in_its_messages = cctx_with_cancel(parent, NULL);
    return work(context_of_a_request_whose_name_is_longer_than_the_checker_keeps_whole_in_its_messages);
}

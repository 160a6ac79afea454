/* libcurl's results as errno values: the system error libcurl saw when it
 * saw one (that is what a caller can act on: refused, unreachable, reset),
 * else the nearest errno for the kind of failure. */
#include "internal.h"

#include <errno.h>

int cc_errno_of(CURLcode code, long os_errno)
{
    switch (code) {
    case CURLE_OK:
        return 0;
    case CURLE_OUT_OF_MEMORY:
        return ENOMEM;
    case CURLE_OPERATION_TIMEDOUT:
        return ETIMEDOUT;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_UNKNOWN_OPTION:
        return EINVAL;
    case CURLE_ABORTED_BY_CALLBACK:
        return ECONNABORTED;
    default:
        break;
    }
    /* From here on a socket was involved: its error says the most. */
    if (os_errno > 0)
        return (int)os_errno;
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return EHOSTUNREACH;
    case CURLE_COULDNT_CONNECT:
        return ECONNREFUSED;
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return ECONNRESET;
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_BAD_CONTENT_ENCODING:
        return EPROTO;
    case CURLE_TOO_MANY_REDIRECTS:
        return ELOOP;
    case CURLE_FILESIZE_EXCEEDED:
        return EFBIG;
    case CURLE_LOGIN_DENIED:
    case CURLE_REMOTE_ACCESS_DENIED:
        return EACCES;
    default:
        return EIO;
    }
}

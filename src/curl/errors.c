/* SPDX-License-Identifier: MIT */
/* libcurl's results as errno values: the nearest errno for the kind of
 * failure, and for a failure on the socket itself the system error libcurl
 * saw there (that is what a caller can act on: refused, unreachable,
 * reset). */
#include "curl_internal.h"

#include <errno.h>

/* The errno for a failure whose kind says everything, or 0 for the socket
 * failures, whose system error says more. */
static int errno_of_kind(CURLcode code)
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
    /* The caller's callback refused: a progress or transfer-info callback
     * returned non-zero, a write callback took less than it was given, a
     * read callback returned CURL_READFUNC_ABORT. */
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_WRITE_ERROR:
    case CURLE_READ_ERROR:
        return ECONNABORTED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return EHOSTUNREACH;
    case CURLE_PARTIAL_FILE:
        return ECONNRESET;
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
#if LIBCURL_VERSION_NUM >= 0x074500
    case CURLE_QUIC_CONNECT_ERROR: /* QUIC's handshake is TLS's */
#endif
#if LIBCURL_VERSION_NUM >= 0x074d00
    /* The server ended the handshake for want of a client certificate. */
    case CURLE_SSL_CLIENTCERT:
#endif
#if LIBCURL_VERSION_NUM >= 0x080800
    case CURLE_ECH_REQUIRED: /* a TLS handshake without the ECH asked for */
#endif
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
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_INTERFACE_FAILED:
        return 0;
    default:
        return EIO;
    }
}

int cctx__curl_errno_of(CURLcode code, long os_errno)
{
    int err = errno_of_kind(code);
    if (err != 0 || code == CURLE_OK)
        return err;
    /* A socket failure. libcurl sets CURLINFO_OS_ERRNO on these alone (and
     * never clears it), so it is read for nothing else: a TLS or HTTP/2
     * error after an earlier refused connect is not ECONNREFUSED. */
    if (os_errno > 0)
        return (int)os_errno;
    switch (code) {
    case CURLE_COULDNT_CONNECT:
        return ECONNREFUSED;
    case CURLE_INTERFACE_FAILED:
        return EADDRNOTAVAIL;
    default: /* nothing came back, or the socket failed without a word */
        return ECONNRESET;
    }
}

/* placeholder: being written */
typedef int cctx_placeholder_io_;

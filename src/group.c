/* placeholder: being written */
typedef int cctx_placeholder_group_;

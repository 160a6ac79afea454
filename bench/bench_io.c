/* placeholder: being written */
#include "harness.h"

void bench_io(void)
{
}

// SPDX-License-Identifier: MIT

package lateness

import "testing"

// Go's side of cctx-bench's CommonParentCancelLoopOnly: Go's
// CommonParentCancel without its context calls, its two busy loops of 100
// divisions alone, run in parallel as the row is. Beside the full row, in the
// same run, it tells how much of Go's figure is its context work, and so what
// a ratio against that figure leaves the other side for its own.
func BenchmarkCommonParentCancelLoopOnly(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		x := 0 // unused after the loops, as in Go's row
		for pb.Next() {
			for i := 0; i < 100; i++ {
				x /= x + 1
			}
			for i := 0; i < 100; i++ {
				x /= x + 1
			}
		}
	})
}

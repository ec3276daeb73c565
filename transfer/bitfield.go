package transfer

import (
	"iter"
	mathbits "math/bits"
)

// bitfield is a set of leaf indexes laid out as in HAVE_MAP: bit i%8 of
// byte i/8.
type bitfield []byte

func newBitfield(n int) bitfield { return make(bitfield, (n+7)/8) }

func (b bitfield) has(i int) bool { return b[i/8]&(1<<(i%8)) != 0 }
func (b bitfield) set(i int)      { b[i/8] |= 1 << (i % 8) }
func (b bitfield) unset(i int)    { b[i/8] &^= 1 << (i % 8) }

// all yields the indexes in b in increasing order.
func (b bitfield) all() iter.Seq[int] {
	return func(yield func(int) bool) {
		for k, w := range b {
			for ; w != 0; w &= w - 1 {
				if !yield(k*8 + mathbits.TrailingZeros8(w)) {
					return
				}
			}
		}
	}
}

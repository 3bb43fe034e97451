package p2p

import (
	"encoding/hex"
	"testing"
)

// TestWireVector pins the example in docs/PROTOCOL-WIRE.md: key seed 32×0x01,
// run "example", first sample 300, exponent 120, codes 1, -1, 127, -127.
func TestWireVector(t *testing.T) {
	b, err := SignBatch(fixedKey(t, 1), NewRunTag("example"), 300, 120, []int8{1, -1, 127, -127})
	if err != nil {
		t.Fatal(err)
	}
	const want = "01" + // version
		"50d858e0985ecc7f" + // run tag
		"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c" + // public key
		"ac02" + // first sample 300
		"04" + // count
		"78" + // exponent 120
		"01ff7f81" + // codes
		"dd626d0003ab4ef423ae190e0decb45d9cfa9a9e570054ca561d35eda926e0c6" + // signature
		"d7da2adec356b14bedf96040a8c1eee4d92408d9cbf1be6137bdd71e17455e0f"
	if got := hex.EncodeToString(b.Raw); got != want {
		t.Fatalf("batch %s, want %s", got, want)
	}
	if b.Machine != 4165428637453022507 {
		t.Fatalf("machine %d", b.Machine)
	}
}

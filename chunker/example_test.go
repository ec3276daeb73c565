package chunker_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/p2pshare/p2pshare/chunker"
)

func ExampleAddReader() {
	res, err := chunker.AddReader(context.Background(), strings.NewReader("hello p2pshare\n"), "hello.txt", chunker.Options{}, chunker.Discard)
	if err != nil {
		panic(err)
	}
	fmt.Println(res.CID, res.Size)
	// Output: bafkreibtkdt77aipnkpxoygra7zwuiahhsvlv5izqfopuspbmgjhgngvje 15
}

// Command gen writes docs/conformance/vectors.json from the Go implementation.
//
//	go run ./docs/conformance/gen
package main

import (
	"fmt"
	"os"

	"github.com/zopeer/zopeer/docs/conformance"
)

func main() {
	b, err := conformance.Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile("docs/conformance/vectors.json", b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

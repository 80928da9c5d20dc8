package sdk

import (
	"fmt"
	"os"
)

// Main runs a plugin: it reads the context from stdin, calls run, and
// prints the output on stdout. When reading, run or writing fails it prints
// the error on stderr and exits with status 1, which fails the run (the
// agent shows the end of stderr). It does not return.
func Main(run func(ctx *Context, out *Output) error) {
	if err := serve(run); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func serve(run func(ctx *Context, out *Output) error) error {
	ctx, err := ReadContext(os.Stdin)
	if err != nil {
		return err
	}
	var out Output
	if err := run(ctx, &out); err != nil {
		return err
	}
	return out.Write(os.Stdout)
}

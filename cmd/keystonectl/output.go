package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// outputFormat is the value of the global -o flag.
type outputFormat string

const (
	formatTable outputFormat = "table" // aligned columns for people (the default)
	formatJSON  outputFormat = "json"  // one JSON document on stdout for programs
)

// Set validates and stores a -o value; it implements pflag.Value.
func (f *outputFormat) Set(s string) error {
	switch v := outputFormat(s); v {
	case formatTable, formatJSON:
		*f = v
		return nil
	default:
		return fmt.Errorf("must be %s or %s", formatTable, formatJSON)
	}
}

// String returns the format's name; it implements pflag.Value.
func (f *outputFormat) String() string { return string(*f) }

// Type names the flag's value in help; it implements pflag.Value.
func (f *outputFormat) Type() string { return "table|json" }

// table is a command result laid out for the table format.
type table struct {
	// header names the columns; nil prints the rows alone (a list of lines).
	header []string
	rows   [][]string
}

// render writes a command's result to opts.Out: value as indented JSON with
// -o json, or t as aligned columns with -o table. Every command prints its
// result through render, so the two formats always carry the same facts.
func (o *options) render(value any, t table) error {
	if o.Output == formatJSON {
		return writeJSON(o.Out, value)
	}
	return writeTable(o.Out, t)
}

func writeJSON(w io.Writer, value any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(value); err != nil {
		return fmt.Errorf("write JSON output: %w", err)
	}
	return nil
}

// writeTable writes t as aligned columns. Cells are escaped for the
// terminal: they hold names and messages from recipes and the agent.
func writeTable(w io.Writer, t table) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if t.header != nil {
		fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	}
	for _, row := range t.rows {
		cells := make([]string, len(row))
		for i, cell := range row {
			cells[i] = terminalSafe(cell, false)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// countingWriter counts what was written through it: whether a command
// printed its result before it failed.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

package main

import (
	"fmt"
	"io"
)

// section is one titled table of a result that needs several, such as a
// deployment's fields, plan and steps.
type section struct {
	// title is printed above the table; "" prints none.
	title string
	table table
	// empty is printed instead of a table with no rows; "" leaves the
	// section out entirely.
	empty string
}

// writeSections writes each section's table, separated by blank lines. It
// is the table form of a result; the JSON form is the value itself.
func writeSections(w io.Writer, sections ...section) error {
	first := true
	for _, s := range sections {
		if len(s.table.rows) == 0 && s.empty == "" {
			continue
		}
		if !first {
			fmt.Fprintln(w)
		}
		first = false
		if s.title != "" {
			fmt.Fprintln(w, s.title)
		}
		if len(s.table.rows) == 0 {
			fmt.Fprintln(w, terminalSafe(s.empty, true))
			continue
		}
		if err := writeTable(w, s.table); err != nil {
			return err
		}
	}
	return nil
}

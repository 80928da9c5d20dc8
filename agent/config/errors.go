package config

import (
	"slices"

	"github.com/keystone-edge/keystone/recipes"
)

// Error is one problem in a configuration file. It is the same type the
// recipe parser reports, so a file's problems read alike everywhere:
// "agent.toml:7:1: mqtt.brokr: unknown key". Path is the dotted key,
// TOML-quoted where needed (components."com.example.hello".config).
type Error = recipes.FieldError

// ErrorList is every problem found in one file, in file order (problems
// with no position last). Load and Parse return it as their error when the
// file is wrong; use errors.As to get at the individual problems.
type ErrorList = recipes.ErrorList

// hasProblem reports whether a problem was already recorded for key, so
// that a key refused while decoding is not reported again by validation.
func hasProblem(l ErrorList, key string) bool {
	return slices.ContainsFunc(l, func(e *Error) bool { return e.Path == key })
}

// Package internal holds test-only helpers shared across KeyStone's packages.
// Nothing in a shipped binary imports it.
package internal

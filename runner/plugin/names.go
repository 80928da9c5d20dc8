package plugin

import (
	"fmt"
	"strings"
)

// reservedPrefix starts the agent's own metric names; a plugin
// may not export under it.
const reservedPrefix = "keystone_"

// validMetricName reports whether s is a Prometheus metric name:
// [a-zA-Z_:][a-zA-Z0-9_:]*.
func validMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// validLabelName reports whether s is a Prometheus label name a user may
// set: [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved for
// Prometheus itself).
func validLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i, c := range s {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// checkMetricName says what is wrong with an exported metric name; "" when
// nothing is.
func checkMetricName(name string) string {
	switch {
	case !validMetricName(name):
		return fmt.Sprintf("name %q is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)", name)
	case strings.HasPrefix(name, reservedPrefix):
		return fmt.Sprintf("name %q: the prefix %q is reserved for the agent's own metrics", name, reservedPrefix)
	}
	return ""
}

// checkLabelName says what is wrong with a label name; "" when nothing is.
func checkLabelName(name string) string {
	if !validLabelName(name) {
		return fmt.Sprintf("label name %q is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", name)
	}
	return ""
}

// Package recipes parses and validates component recipes (SPEC §3) and
// deployment manifests (SPEC §5) into typed values, merges imports, resolves
// configuration and interpolation, and builds the dependency graph.
//
// It owns the file formats and their error messages. It does no network I/O,
// runs nothing and knows nothing of the store or of running components;
// signature checks live in ota/sign.
package recipes

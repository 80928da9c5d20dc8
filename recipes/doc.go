// Package recipes parses and validates component recipes and deployment
// manifests into typed values: it merges imports, applies defaults, layers
// configuration (EffectiveConfig) and resolves ${…} references
// (Recipe.Render). Every problem in a file is reported at once, as an
// ErrorList of FieldErrors that name file:line:col and the field path.
// Subpackage graph resolves a deployment's dependency graph.
//
// It owns the file formats and their error messages. It does no network I/O,
// runs nothing and knows nothing of the store or of running components; it
// reads only the files it is asked to parse and the files they import.
// Signature checks live in ota/sign.
package recipes

package recipes

// MaxFileSize is the size limit of a file, for tests outside the package.
const MaxFileSize = maxFileSize

// WithoutPositions returns m without the key positions it keeps for its
// errors, for comparisons with a literal.
func WithoutPositions(m *Manifest) *Manifest {
	out := *m
	out.positions = nil
	return &out
}

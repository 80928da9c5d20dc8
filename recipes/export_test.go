package recipes

// MaxFileSize is the size limit of a file, for tests outside the package.
const MaxFileSize = maxFileSize

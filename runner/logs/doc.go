// Package logs keeps what components print: one file per component,
// logs/<name>.log, rotated by size (<name>.log.1 is the newest rotated file),
// under a per-component cap and one budget shared by every component, plus
// a bounded in-memory tail of recent lines that the local API reads and
// follows.
//
// Disk use is bounded by construction: a chatty component can never fill
// the disk. Before a line is written its component's oldest rotated files go
// until the component fits its cap; when all components together would pass
// the global budget, the oldest rotated files of the biggest users go first,
// then the writer's own current file is rotated away. A line that still does
// not fit is dropped and counted, and once space is back the component's log
// says so: "[keystone] dropped N bytes". The in-memory tail gets every line,
// dropped from disk or not.
//
// The package reads and writes only its own directory. It does not know
// where lines come from (a reader is copied in with Capture; a caller that
// reads pipes itself pushes the bytes through a Splitter, which makes the
// same lines) and never blocks a writer on a slow follower: a follower
// that falls behind misses lines and is told how many.
package logs

// Package ota owns every byte that comes from outside the device: artifact
// downloads (resume, retry, checksum), the content-addressed artifact cache
// and its garbage collection, safe unpacking, TUF repository verification and
// the agent's own A/B self-update.
//
// The deployment engine uses it through Fetcher: Fetch makes every artifact
// of a set of resolved recipes present in the cache with its sha256 checked,
// and places each new version folder, before anything running is touched;
// GC keeps the cache within its limit given what installed versions need.
// Repository resolves a component version from the signed component
// repository, and installs an agent release from it (FetchRelease) for the
// self-update. Every failure a caller branches on is an *Error whose Reason
// is the job's error_code.
//
// Files: download.go (grab, retries, stalls), httpclient.go (the private
// HTTP client), cache.go and gc.go (artifacts/<sha256> and its store index),
// unpack.go (archives), fetcher.go and place.go (what the engine calls),
// repository.go (the go-tuf updater), release.go and releasearchive.go
// (agent releases and their archive format), errors.go (reasons). The repository
// authoring side is ota/tufrepo; ed25519 keys and detached signatures are
// ota/sign.
//
// It never starts or stops components, never decides which versions are
// installed (callers say what GC must keep), and never uses
// http.DefaultClient or package-level state.
package ota

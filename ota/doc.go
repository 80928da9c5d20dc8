// Package ota owns every byte that comes from outside the device: artifact
// downloads (resume, retry, checksum), the content-addressed artifact cache
// and its garbage collection, safe unpacking, TUF repository verification and
// the agent's own A/B self-update.
//
// It never starts or stops components.
package ota

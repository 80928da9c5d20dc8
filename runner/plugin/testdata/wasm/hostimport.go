// hostimport imports a host function other than WASI's, which a plugin
// must not get.
package main

//go:wasmimport env launch_missiles
func launchMissiles() int32

func main() { launchMissiles() }

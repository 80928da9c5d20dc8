// Package tufrepo creates and maintains a KeyStone component repository:
// TUF metadata (root, targets, snapshot, timestamp) signed with ed25519 keys
// by theupdateframework/go-tuf/v2, plus the recipe and artifact targets,
// laid out for any static HTTP server. It backs `keystonectl repo`.
//
// A repository folder DIR holds:
//
//	DIR/keys/<role>.key        private keys, mode 0600, folder 0700; never served
//	DIR/staged/targets.json    targets being prepared by Add, signed by Publish
//	DIR/repository/            the folder to serve (trust.repository points here)
//	    root.json, <n>.root.json
//	    timestamp.json, <n>.snapshot.json, <n>.targets.json
//	    targets/<name>/<version>/<sha256>.<file>
//
// Targets of one component version live under <name>/<version>/: the recipe
// at RecipeTarget(name, version) and its artifacts beside it, referenced from
// the recipe as repo:<name>/<version>/<file>.
//
// Agent releases live under keystone-agent/<version>/, a name no recipe may
// take: AddRelease packs the agent binary (and optional shim) for one
// platform into the gzip'd tar ReleaseTarget(version, os, arch), after
// ExecutablePlatform has checked that each is an ELF executable for it.
//
// The package never talks to the network and holds no state between calls:
// every function reads the folder, changes it and writes it back, with files
// replaced atomically so a server never serves half a file.
package tufrepo

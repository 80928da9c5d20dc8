// Package packaging holds no code: the Debian packages of KeyStone are
// built from this folder by 'make package' (see docs/install.md). Its tests
// check the configuration files the packages install.
package packaging

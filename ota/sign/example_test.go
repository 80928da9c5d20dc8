package sign_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"

	"github.com/keystone-edge/keystone/ota/sign"
)

func ExampleCanonicalJSON() {
	doc := []byte(`{ "kind": "cancel", "job_id": "j-9",
	                 "signature": {"key_id": "0123456789abcdef", "sig": "…"} }`)
	canon, err := sign.CanonicalJSON(doc)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(canon))
	// Output: {"job_id":"j-9","kind":"cancel"}
}

func ExampleKeyring_VerifyDetached() {
	// A fixed seed keeps the output stable; real keys come from GenerateKey.
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	ring, err := sign.NewKeyring(pub)
	if err != nil {
		fmt.Println(err)
		return
	}

	recipe := []byte("format = 1\n")
	sigFile := sign.EncodeSignature(sign.Sign(priv, recipe))

	keyID, err := ring.VerifyDetached(recipe, sigFile)
	fmt.Println(keyID == sign.KeyID(pub), err)

	recipe[0] = 'F'
	_, err = ring.VerifyDetached(recipe, sigFile)
	fmt.Println(err != nil)
	// Output:
	// true <nil>
	// true
}

package keys

import (
	"bytes"
	"strings"
	"testing"
)

func TestParsePKCS11URI(t *testing.T) {
	slot := func(n uint) *uint { return &n }
	ok := []struct {
		in   string
		want PKCS11URI
		str  string
	}{
		{"pkcs11:", PKCS11URI{}, "pkcs11:"},
		{"PKCS11:token=a", PKCS11URI{Token: "a"}, "pkcs11:token=a"},
		{"pkcs11:token=signing;object=dkms?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/dkms-sign-hook/pin",
			PKCS11URI{Token: "signing", Object: "dkms", ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PinSource: "/etc/dkms-sign-hook/pin"},
			"pkcs11:token=signing;object=dkms"},
		// As p11tool --list-privkeys prints them.
		{"pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=2c3a5f9b0e1d4a77;token=My%20Token;id=%01%ff;object=key%3bwith%20semicolon;type=private",
			PKCS11URI{Model: "SoftHSM v2", Manufacturer: "SoftHSM project", Serial: "2c3a5f9b0e1d4a77", Token: "My Token", ID: []byte{1, 0xff}, Object: "key;with semicolon", Type: "private"},
			"pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=2c3a5f9b0e1d4a77;token=My%20Token;id=%01%FF;object=key%3Bwith%20semicolon;type=private"},
		{"pkcs11:slot-id=7;id=%0A?pin-value=1234", PKCS11URI{SlotID: slot(7), ID: []byte{10}, PinValue: "1234"}, "pkcs11:slot-id=7;id=%0A"},
		{"pkcs11:token=a?pin-source=file:/etc/pin&x-vendor=1", PKCS11URI{Token: "a", PinSource: "file:/etc/pin"}, "pkcs11:token=a"},
		{"pkcs11:token=a;x-foo=bar", PKCS11URI{Token: "a"}, "pkcs11:token=a;x-foo=bar"},
		{"pkcs11:object=a&b", PKCS11URI{Object: "a&b"}, "pkcs11:object=a%26b"},
		{"pkcs11:library-manufacturer=SoftHSM;library-version=2.6;library-description=Implementation%20of%20PKCS11", PKCS11URI{LibraryManufacturer: "SoftHSM", LibraryVersion: "2.6", LibraryDescription: "Implementation of PKCS11"}, ""},
		{"pkcs11:token=a?", PKCS11URI{Token: "a"}, "pkcs11:token=a"},
	}
	for _, c := range ok {
		u, err := ParsePKCS11URI(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		got := *u
		got.path = nil
		if !equalURI(&got, &c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.in, got, c.want)
		}
		if c.str != "" && u.String() != c.str {
			t.Errorf("%q: String() = %q, want %q", c.in, u.String(), c.str)
		}
		if strings.Contains(u.String(), "1234") || strings.Contains(u.String(), "pin") {
			t.Errorf("%q: String() leaks the query: %q", c.in, u.String())
		}
		// String() parses back to the same path attributes.
		if back, err := ParsePKCS11URI(u.String()); err != nil || back.String() != u.String() {
			t.Errorf("%q: String() does not round-trip: %q, %v", c.in, back, err)
		}
	}

	bad := []struct{ in, want string }{
		{"", "not a pkcs11"},
		{"/etc/key.pem", "not a pkcs11"},
		{"pkcs11", "not a pkcs11"},
		{"pkcs11:token", "without name=value"},
		{"pkcs11:=x", "without name=value"},
		{"pkcs11:token=a;token=b", `"token" given twice`},
		{"pkcs11:token=a;;object=b", "without name=value"},
		{"pkcs11:tokn=a", `unknown path attribute "tokn"`},
		{"pkcs11:token=a?pin=1", `unknown query attribute "pin"`},
		{"pkcs11:id=%0", "truncated"},
		{"pkcs11:id=%", "truncated"},
		{"pkcs11:id=%zz", "bad percent"},
		{"pkcs11:object=a b", "percent-encoded"},
		{"pkcs11:slot-id=x", "not a decimal"},
		{"pkcs11:slot-id=99999999999", "not a decimal"},
		{"pkcs11:type=secret", "unknown type"},
		{"pkcs11:token=a#frag", "fragment"},
		{"pkcs11:token=a?pin-value=s3cr%zz", `"pin-value"`},
		{"pkcs11:a%20b=1", "bad path attribute name"},
	}
	for _, c := range bad {
		_, err := ParsePKCS11URI(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want %q", c.in, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr") {
			t.Errorf("%q: error leaks the PIN: %v", c.in, err)
		}
	}
}

func equalURI(a, b *PKCS11URI) bool {
	if (a.SlotID == nil) != (b.SlotID == nil) || a.SlotID != nil && *a.SlotID != *b.SlotID {
		return false
	}
	return a.Token == b.Token && a.Manufacturer == b.Manufacturer && a.Serial == b.Serial && a.Model == b.Model &&
		a.SlotDescription == b.SlotDescription && a.SlotManufacturer == b.SlotManufacturer &&
		a.LibraryManufacturer == b.LibraryManufacturer && a.LibraryDescription == b.LibraryDescription &&
		a.LibraryVersion == b.LibraryVersion && a.Object == b.Object && bytes.Equal(a.ID, b.ID) && a.Type == b.Type &&
		a.ModulePath == b.ModulePath && a.ModuleName == b.ModuleName && a.PinValue == b.PinValue && a.PinSource == b.PinSource
}

func FuzzParsePKCS11URI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:",
		"pkcs11:token=signing;object=dkms?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/dkms-sign-hook/pin",
		"pkcs11:model=SoftHSM%20v2;id=%01%ff;type=private?pin-value=1234",
		"pkcs11:slot-id=7;x-a=b?x-c=d",
		"pkcs11:id=%",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParsePKCS11URI(s)
		if err != nil {
			return
		}
		// What parses, prints; what prints, parses back the same.
		back, err := ParsePKCS11URI(u.String())
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", u.String(), s, err)
		}
		if back.String() != u.String() || !bytes.Equal(back.ID, u.ID) || back.Object != u.Object || back.Token != u.Token {
			t.Fatalf("round trip of %q: %q != %q", s, back.String(), u.String())
		}
		if u.PinValue != "" && strings.Contains(u.String(), "pin-value") {
			t.Fatalf("String() holds the query: %q", u.String())
		}
	})
}

// Recomputes the reference fingerprints in tests/io/tokenizer_test.cc with Hugging Face
// `tokenizers` (its Node.js binding, same Rust core as the Python package). Not part of the build:
//   npm install tokenizers   (in any scratch directory; then NODE_PATH=that/node_modules)
//   node tests/io/tokenizer_reference.js TOKENIZER.json FILE
// FILE is a raw text file (one text) or a .jsonl with a "text" field per line. Prints the token
// count and FNV-1a (64-bit) over each id as a uint32, with 0xFFFFFFFF folded in after each text.
const { Tokenizer } = require('tokenizers');
const fs = require('fs');

(async () => {
  const tok = Tokenizer.fromFile(process.argv[2]);
  const file = process.argv[3];
  const texts = file.endsWith('.jsonl')
    ? fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length).map((l) => JSON.parse(l).text)
    : [fs.readFileSync(file, 'utf8')];
  let h = 0xcbf29ce484222325n;
  let n = 0;
  const mix = (v) => {
    h ^= BigInt(v);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  };
  for (const t of texts) {
    const ids = (await tok.encode(t, null, { addSpecialTokens: false })).getIds();
    for (const id of ids) mix(id);
    mix(0xffffffff);
    n += ids.length;
  }
  console.log(`texts=${texts.length} tokens=${n} fingerprint=0x${h.toString(16).padStart(16, '0')}`);
})();

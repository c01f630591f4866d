import { Session } from "sdmprune";              // plain Node ESM; CommonJS: const { Session } = require("sdmprune")

const data = "../shared/data/tinystories/tinystories_valid_first1000.txt";
const s = await Session.load("../shared/models/stories260K.gguf");   // .gguf file or Hugging Face directory
await s.calibrate({ files: data, stories: "1-200", samples: 32, seqLen: 128, seed: 0 });  // windows + teacher cache, once
const r = await s.score({ criterion: "sd-taylor", alpha: 0.4, temperature: 0.2 });
console.log(r.table().toText());
console.log((await s.sensitivity()).toText());  // loss increase with each layer's MLP / attention switched off
s.prune({ ratio: 0.2 });                         // remove 20 % of each layer's MLP channels
console.log((await s.evaluate({ ppl: { file: data, stories: "500-999", seqLen: 128 } })).toText());
await s.save("out/stories260K-pruned", { format: "hf" });   // + pruning.json and provenance.json
s.undo();                                         // back to the previous step, bit for bit
s.dispose();

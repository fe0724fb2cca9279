// Runs the bundled PP-OCRv4 det on the bundled calibrate/judge images (scripts/make-det-set.py)
// and prints the text boxes it finds in each: a judge image where the original finds nothing
// judges nothing. Usage: node dist/scripts/check-det-set.js [folder with calibrate/ and judge/]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../devkit/paths.js';
import { detBoxCounts } from '../devkit/det-boxes.js';

const root = process.argv[2] ?? join(ROOT, 'assets/calib/det');
for (const split of ['calibrate', 'judge']) {
  const dir = join(root, split);
  const files = readdirSync(dir)
    .filter((f) => /\.(png|jpe?g)$/i.test(f))
    .sort();
  const counts = await detBoxCounts(
    files.map((f) => join(dir, f)),
    JSON.parse(readFileSync(join(dir, 'preprocess.json'), 'utf8')),
  );
  files.forEach((f, i) => console.log(`${split}/${f}: ${counts[i]} boxes`));
  console.log(
    `${split}: ${files.length} images, ${counts.filter((c) => c > 0).length} with text, ${counts.reduce((a, b) => a + b, 0)} boxes`,
  );
}

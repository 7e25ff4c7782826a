// The one definition of a near-tie (src/backends/token-agreement.ts), on made-up grids and inputs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkImages, compareTokens, NEAR_TIE_INPUT_EPSILON, nearbyInputs, tokenDisagreements } from '../src/backends/token-agreement.ts';

test('a token the reference changes under either input move is a near-tie; only clear tokens count against the tested runtime', () => {
  const reference = { vis: Int32Array.of(1, 2, 3, 4), sem: Int32Array.of(5, 6, 7, 8) };
  const nearby = [
    { vis: Int32Array.of(1, 9, 3, 4), sem: Int32Array.of(5, 6, 7, 8) }, // position 1 of vis flips under +e*n
    { vis: Int32Array.of(1, 2, 3, 4), sem: Int32Array.of(5, 6, 0, 8) }, // position 2 of sem flips under -e*n
  ];
  const tested = { vis: Int32Array.of(1, 8, 3, 0), sem: Int32Array.of(5, 6, 1, 8) };
  const results = compareTokens(['vis', 'sem'], reference, nearby, tested);
  assert.deepEqual(results, [
    { codebook: 'vis', positions: 4, unclear: 1, mismatches_clear: 1, mismatches_all: 2 },
    { codebook: 'sem', positions: 4, unclear: 1, mismatches_clear: 0, mismatches_all: 1 },
  ]);
  assert.deepEqual(tokenDisagreements(results, 0), ['vis: 1 of 3 tokens with a clear CPU margin differ from the CPU\'s']);
  assert.deepEqual(tokenDisagreements(results, 0.34), [], 'one of three clear tokens is within a third');
});

test('the fixed input is deterministic, in [-1, 1]; its two moves are opposite, by at most the epsilon', () => {
  const images = checkImages(1, 16);
  assert.deepEqual(images, checkImages(1, 16));
  assert.ok(images.every((v) => v >= -1 && v <= 1));
  const [up, down] = nearbyInputs(images);
  let moved = 0;
  for (let i = 0; i < images.length; i++) {
    const a = up![i]! - images[i]!;
    const b = down![i]! - images[i]!;
    assert.ok(Math.abs(a) <= NEAR_TIE_INPUT_EPSILON + 1e-7 && Math.abs(b) <= NEAR_TIE_INPUT_EPSILON + 1e-7);
    if (Math.abs(images[i]!) < 1 - NEAR_TIE_INPUT_EPSILON) {
      assert.ok(Math.abs(a + b) < 1e-6, `position ${i}: the moves are not opposite`);
      if (a !== 0) moved++;
    }
  }
  assert.ok(moved > images.length / 2, 'the noise moves the input');
});

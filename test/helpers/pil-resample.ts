// A whole Pillow resize, for tests that compare the service's span-limited crop against full resizes.
import { axisSpan, resampleSpans, type ResampleFilter } from '../../src/imaging/pil-resample.ts';
import type { RgbImage } from '../../src/imaging/rgb-image.ts';

/** Resizes like Pillow's `Image.resize((outWidth, outHeight), resample)` on an 'RGB' image. */
export function resample(image: RgbImage, outWidth: number, outHeight: number, filter: ResampleFilter): RgbImage {
  return resampleSpans(image, [{ xs: axisSpan(image.width, outWidth, filter), ys: axisSpan(image.height, outHeight, filter) }]);
}

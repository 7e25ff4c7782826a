// Names of the views an augmentation produces per image, in the order the crops come out.
import type { Augment } from '../imaging/reference-crop.ts';

export type { Augment };

const FIVE = ['top_left', 'top_right', 'bottom_left', 'bottom_right', 'center'];

export const VIEWS: Record<Augment, readonly string[]> = {
  none: ['center'],
  // The reference code extraction encodes the centre crop and its horizontal mirror.
  flip: ['center', 'flip'],
  // torchvision TenCrop order: the five crops of the image, then the five of its mirror.
  ten_crop: [...FIVE, ...FIVE.map((v) => `flip_${v}`)],
};

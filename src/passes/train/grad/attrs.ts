// Float attributes as rules write them: a JS number is an int attribute unless marked, since 1.0
// and 1 are the same number.
import type { AttrValue } from '../../../ir/types.js';

export const floatAttr = (value: number): AttrValue => ({ type: 'float', value });
export const floatsAttr = (value: number[]): AttrValue => ({ type: 'floats', value });

// What a model is for, which decides how its fidelity is judged: a classifier by its labels, a
// text detector by its boxes, a recogniser by its decoded text (issue 16). The task metrics
// themselves are defined beside this list.

/** Tasks a user can name (`--task`); 'raw' compares raw outputs by cosine, like 'embed'. */
export const TASK_NAMES = ['classify', 'text-det', 'detect', 'ctc', 'embed', 'raw'] as const;
export type Task = (typeof TASK_NAMES)[number];

/** Expand/contract operations for big, busy tables; each with validate / run / undo. */
export * from './common';
export * from './add-column';
export * from './backfill-column';
export * from './set-not-null';
export * from './create-index';
export * from './add-constraint';
export * from './drop';

export { OutlierDetector } from './outlier.ts';
export { ActiveHealthChecker } from './active.ts';

// tap's `coverage-map` (every package's .taprc): each test file records coverage of the package's own src/ only,
// whether loaded as TypeScript or through a built file whose source map points there (dist/). Without it, tap
// records every script a test process loads (its own modules, node_modules: ~7 MB a process) and reports none of it.
export default () => 'src/**'

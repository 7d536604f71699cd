using BenchmarkDotNet.Running;

// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --filter '*HitPath*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);

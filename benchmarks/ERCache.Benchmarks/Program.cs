using BenchmarkDotNet.Running;
using ERCache.Benchmarks;

// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --filter '*HitPath*'
// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --memory [entries]
if (args.Length > 0 && args[0] == "--memory")
{
    MemoryFigure.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1_000_000);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(KernelBenchmarks).Assembly).Run(args);

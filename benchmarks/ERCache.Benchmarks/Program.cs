using BenchmarkDotNet.Running;
using ERCache.Benchmarks;

// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --filter '*HitPath*'
// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --memory [entries]
if (args.Length > 0 && args[0] == "--memory")
{
    MemoryFigure.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1_000_000);
    return;
}

// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --stampede
// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --throughput [operations per thread] [thread counts, e.g. 1,2,4,8]
if (args.Length > 0 && args[0] == "--stampede")
{
    await StampedeCount.RunAsync();
    return;
}

// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --invalidation-lag 127.0.0.1:6379 [removals]
if (args.Length > 1 && args[0] == "--invalidation-lag")
{
    await InvalidationLag.RunAsync(args[1], args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 1000);
    return;
}

if (args.Length > 0 && args[0] == "--throughput")
{
    int operations = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 2_000_000;
    int[] threads = args.Length > 2 ? args[2].Split(',').Select(t => int.Parse(t, System.Globalization.CultureInfo.InvariantCulture)).ToArray() : [1, 2, 4, 8];
    ThroughputHarness.Run(operations, threads);
    return;
}

// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --write-tail [entries] [rounds] [writes per second, 0 = unpaced]
if (args.Length > 0 && args[0] == "--write-tail")
{
    WriteTail.Run(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 262_144,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 3,
        args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 0);
    return;
}

// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --load-tail [entries] [rounds] [request writes per second]
if (args.Length > 0 && args[0] == "--load-tail")
{
    LoadTail.Run(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 262_144,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 3,
        args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 20_000);
    return;
}

// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --core-to-core [seconds]
if (args.Length > 0 && args[0] == "--core-to-core")
{
    CoreToCore.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 10);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(KernelBenchmarks).Assembly).Run(args);

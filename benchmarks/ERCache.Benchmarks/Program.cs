using BenchmarkDotNet.Running;
using ERCache.Benchmarks;

// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --filter '*HitPath*'
// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --memory [entries]
if (args.Length > 0 && args[0] == "--memory")
{
    MemoryFigure.Run(IntArg(1, 1_000_000));
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
    await InvalidationLag.RunAsync(args[1], IntArg(2, 1000));
    return;
}

if (args.Length > 0 && args[0] == "--throughput")
{
    int operations = IntArg(1, 2_000_000);
    int[] threads = args.Length > 2 ? args[2].Split(',').Select(t => int.Parse(t, System.Globalization.CultureInfo.InvariantCulture)).ToArray() : [1, 2, 4, 8];
    ThroughputHarness.Run(operations, threads);
    return;
}

// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --write-tail [entries] [rounds] [writes per second, 0 = unpaced]
if (args.Length > 0 && args[0] == "--write-tail")
{
    WriteTail.Run(IntArg(1, 262_144), IntArg(2, 3), IntArg(3, 0));
    return;
}

// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --load-tail [entries] [rounds] [request writes per second]
if (args.Length > 0 && args[0] == "--load-tail")
{
    LoadTail.Run(IntArg(1, 262_144), IntArg(2, 3), IntArg(3, 20_000));
    return;
}

// dotnet run -c Release --project benchmarks/ERCache.Benchmarks -- --core-to-core [seconds]
if (args.Length > 0 && args[0] == "--core-to-core")
{
    CoreToCore.Run(IntArg(1, 10));
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(KernelBenchmarks).Assembly).Run(args);

// The command line's integer at position index, or fallback when it has none.
int IntArg(int index, int fallback) => args.Length > index ? int.Parse(args[index], System.Globalization.CultureInfo.InvariantCulture) : fallback;
